"""Decentralized GNN controllers and online CBFs on navigation: transfer, safety and scale.

    python -m benchmarks.navigation [transfer] [safety] [unfiltered] [parked-gain] [scale] [--minutes 20]
                                    [--safety-minutes 10]
                                    [--device cpu] [--json]
    gamelab bench navigation [...]

Measured, each part on its own when named (all of them by default):

1. **transfer** (InforMARL's table; Nayak et al., ICML 2023): MAPPO with the GNN model
   trained on ``preset=informarl`` with N = 3 (and the reward counting an agent home within
   ``TRAIN_REWARD_RADIUS`` = 0.03 of its goal) for ``--minutes`` of training, then evaluated
   with N = 3, 7, 10, 15 over 100 episodes each. The baseline is MAPPO with the MLP model
   on navigation's fixed K-nearest observation (4 agents, 2 obstacles), trained for
   ``--mlp-minutes``. InforMARL reports S% = 100 at every N and collisions per agent of
   0.40, 0.74, 0.95 and 1.28 (its Table 2). The goal: S% >= 99 at every N and fewer
   collisions, in at most 20 minutes of training on 2 CPU cores. The part also plays the
   scripted goal seeker (straight at the goal, blind to everyone) as a reference, and both
   through the move filter of ``marl.cbf`` (below).

   NOTE: the trained policies collide about as often as the goal seeker: over 200 episodes
   their obstacle overlaps stay at 0.23-0.25 per agent at every N (the goal seeker's: 0.25-0.26),
   and they gain on it in agent-agent overlaps (N = 15: 1.10 against 1.24) and in T. A
   heavier collision penalty in training (the evaluation keeps the task's 5) did not change
   that within 20 minutes (two runs at once, one thread each, 1.4-2.1 million steps;
   collisions per agent at N = 3 / 15, S% at 15): penalty 5 gave 0.43 / 1.36, 94; 15 gave
   0.42 / 1.36, 99; 15 with each agent's own reward 0.39 / 1.34, 94; 5 for 10 minutes and
   then 30 gave 0.37 / 1.31, 94, and then 50 gave 0.41 / 1.36, 100. A penalty of 50 or 100
   from the start teaches agents to keep still (N = 3: 0.14 and 0.02 collisions, S% 8 and 4).
   The trained actors are near-deterministic (greedy logits about 20 apart) and blind to an
   obstacle in their path: their logits with an obstacle 0.2 to 0.4 ahead agree to 0.1, lie
   within 2 of those with no obstacle, and never change the chosen action, while a scripted
   potential field (reach 0.3) brings obstacle overlaps to 0 (at a cost in S%), so avoidance is
   physically open. Recipes that did not change this (20 minutes, one thread each; collisions
   N = 3 / 15, S% at 15): a training penalty rising linearly to 5 over the last 0.1 (or 0.2)
   before contact, 0.42 / 1.33, 64 (0.33 / 1.28, 0); entropy weight 0.05, 0.42 /
   1.55, 58, and with that proximity penalty 0.38 / 1.37, 97; edge features exp(-d / 0.1) and
   that times the unit offset, 0.45 / 1.34, 96 (with the proximity penalty 0.42 / 1.19, 0);
   training among 10 obstacles, 0.52 / 1.63, 0 (penalty 15: agents keep still, S% 0).

   The part also plays the trained GNN's moves, and the goal seeker's, through the move filter
   (``TRANSFER_FILTERS``: the one-step-lookahead barrier at alpha 10 with no margin, each move
   checked on the exact distance it gives two steps on): with half responsibility between agents,
   with agents parked at their goals taking on their pairs with travelling agents
   (``pairs="yield"``), with only parked agents keeping clear of others (``pairs="parked"``),
   against obstacles only (``pairs="obstacles"``), and with only the agents parked at their goals
   filtered, 0.06 beyond contact (``pairs="parked_only"``: a parked agent steps out of the way of
   travelling agents and obstacles, and a travelling agent's move always stands); and the GNN's
   moves drawn from the policy (``gamelab evaluate --sample``) instead of its most likely ones,
   alone and through each filter. The GNN is also measured over ``BLOCKS`` = 10 blocks of 100
   episodes (evaluation seeds 11-20): unfiltered, and through ``parked_only`` greedy and drawn.

   NOTE: one block of 100 episodes swings collisions per agent by about 10% from the next, more than
   the gaps to InforMARL's figures. Both models train with ``TRAIN_REWARD_RADIUS``: trained on the
   task's own radius (0.05), the policy of training seed 1 (2.8 million steps) stopped agents 0.05-0.09
   from their goals, with no one in their way, when 15 agents crowded its graph, for S% 100 / 99.9 /
   98.5 / 72.3 unfiltered and 100 / 100 / 98.5 / 73.0 through ``parked_only`` (evaluation blocks
   21-30). Trained with reward radius 0.03 (2.3 million steps), the same seed gave S% 100 / 100 /
   99.9 / 99.2 unfiltered and 100 / 100 / 100 / 99.6 through ``parked_only``, with 0.353 / 0.657 /
   0.891 / 1.275 collisions per agent; seed 2 kept its figures (2.6 million steps; through
   ``parked_only`` S% 100 / 100 / 100 / 99.8 and 0.346 / 0.663 / 0.887 / 1.270, against 100 / 100 /
   99.9 / 99.8 and 0.352 / 0.673 / 0.863 / 1.266 at radius 0.05). The latest run (seed 0, radius
   0.03, 2.6 million steps), over the 1,000 episodes: unfiltered 0.360 / 0.703 / 0.923 / 1.336 with
   S% 100 / 100 / 100 / 99.7; through ``parked_only`` S% 100 / 100 / 100 / 99.9 (worst block 99) and
   0.339 / 0.652 / 0.847 / 1.242 (standard errors 0.012-0.022; worst block 0.387 / 0.750 / 0.901 /
   1.320), under InforMARL's at every N; its drawn moves 0.345 / 0.644 / 0.861 / 1.260 with S% 100 /
   100 / 100 / 99.8. The first block alone (the 100-episode sweep): 0.387 / 0.750 / 0.871 / 1.252
   greedy (over InforMARL's at N = 7 by 0.010) and 0.367 / 0.777 / 0.880 / 1.234 drawn, S% 100
   throughout. At radius 0.05 the run before gave 0.340 / 0.618 / 0.853 / 1.248 through
   ``parked_only``. The margin 0.06 was chosen on a policy of that recipe and seed 0 trained apart
   (radius 0.05), from 0, 0.03, 0.06, 0.1 and 0.15 (N = 15: 1.296, 1.256, 1.244, 1.244, 1.251, S%
   99.7 or more throughout). The filter takes 5-10% off the collisions of every policy.
   With ``parked`` and with ``obstacles`` the GNN's collisions per agent fell under InforMARL's at
   every N in each of the last five runs (latest: 0.21 / 0.58 / 0.71 / 1.17 and 0.21 / 0.59 / 0.77
   / 1.22 at N = 3 / 7 / 10 / 15), with S% 100 / 95 / 99 / 100 and 100 / 95 / 99 / 99 (drawn moves:
   100 / 97 / 97 / 98 and 100 / 96 / 99 / 100); over those runs S% ranged over 93-100 beyond 3
   agents: these filters turn travelling agents aside.
   Misses traced with drawn moves against obstacles only (two saved policies, two
   seeds, 1,600 episodes, 22 agents): 10 held next to an obstacle by a two-step cycle (the policy
   alternates two moves, the filter refuses one and sends the agent back, the other leads it in
   again) and 12 out of the 25 steps after 2-15 filtered moves, most from 1.6-2.6 away. Greedy
   moves also leave agents that the policy parks 0.05-0.06 from the goal, just outside its radius;
   draws move those on (on those policies, unfiltered S% at N = 15 went from 92-100 to 99-100,
   mean S% over N and seeds through ``obstacles`` from 97.2 to 98.6).
   Keeping travelling agents apart cuts collisions much further (0.04-0.15 with half
   responsibility, 0.07-0.37 yielding) at a cost in S% (latest run 100 / 88 / 91 / 70 and 100 / 91 /
   96 / 77): agents turned aside run out of the 25 steps. The row's tangent half-plane in place
   of the exact distance refuses moves that slide along what an agent touches: on a policy of an
   earlier run, half responsibility gave S% 98 / 83 / 85 / 52 with the row and 97 / 92 / 86 / 61
   with the exact distance. On that policy the braking barrier, with its speed limit, costs more
   S% still (88 / 49 / 41 / 9, the row). None of these did better (mean S% over N = 3-15 on two
   saved policies and two seeds, drawn moves, against 98.6 for ``obstacles`` at alpha 10):
   alpha 5 or 2 against obstacles (90.5, 40.1); also checking each move 3, 5 or 8 steps on
   (98.6, 97.2, 95.8); sampling at temperature 2 or 4 (96.9, 82.5); drawing among the admissible
   moves only (97.8); a shield that lets the policy's move through after 3 refusals in a row
   (98.9, by letting contacts through); one that keeps a turned move 2 more steps (81.2). Draws
   alone move these figures by about 1 (the reference with other draws: 97.9). Nor did training through the filter (a lookahead filter
   in the loop, full responsibility; 20 minutes, one thread: S% 99 / 92 / 80 / 35), letting the
   filter pick the policy's most likely admissible move (97 / 90 / 77 / 52, greedy), other
   tie-breaks among admissible moves (towards the goal, or the velocity weighed by speed: within
   1 of the committed rule), a curriculum that put each obstacle on an agent's straight path to
   its goal in half the training episodes (20 minutes; obstacle overlaps stayed at 0.23 per
   agent), or training three times as long (60 minutes on one thread, 3.8 million steps:
   unfiltered collisions 0.40-0.42 / 0.64-0.76 / 0.90 / 1.27-1.37, S% through ``obstacles`` with
   drawn moves 96-100, as at 20 minutes). Nor did steering the policy round obstacles by showing it,
   in place of its goal, a waypoint on the tangent to the nearest obstacle in its way (the
   tangent-bug rule of Kamon, Rivlin and Rimon, ICRA 1996, planned from half the distance the agent
   coasts, 0.03 beyond contact, each agent keeping the side it first turned to): on a policy of the
   committed recipe, S% 100 / 99 / 99 / 95 and 98 / 98 / 98 / 97 on seeds 11 and 12, collisions
   0.22 / 0.59 / 0.83 / 1.21; trained with the waypoints for 20 minutes (2.8 million steps) and
   played with them, over 1,000 episodes, 0.20 / 0.54 / 0.81 / 1.27 collisions with S% 99.8 / 99.4
   / 98.5 / 95.9: agents that start 1.7-2.6 from their goals run out of the 25 steps after the
   detours.
2. **safety** (Gao, Yang and Prorok, MRS 2023; GCBF+'s rates): on navigation's default
   settings (continuous commands, an arena that keeps the density of 8 agents in
   [-1, 1]^2), the online CBF (a GNN sets each agent's gain; ``filter=online-cbf``)
   trained with N = 8 for ``--safety-minutes``, against the best fixed gain of a grid
   (chosen by success rate at N = 8; the online gains start from it) and the unfiltered
   goal-seeking policy, at
   N = 8, 16, 64, 256. The goal: safe rate 1 and success rate >= 0.95 at every N, and the
   online gains above the best fixed gain in success rate and T. Since the two differ by less
   than one set of episodes swings, both also play ``SAFETY_BLOCKS`` sets, and the part reports
   the paired differences in success and T with their standard errors. Part **unfiltered** trains
   the other baseline, the GNN policy with no filter, on the same task and budget.

   NOTE: there is room above the best fixed gain (alpha = 10, where the braking rows'
   ``gamma = min(alpha dt, 1)`` is already 1): a hand rule, alpha = 0.5 for agents parked at
   their goal and 10 for the others, has them yield, and measured success 0.9962 and T
   0.2503 at N = 8 against 0.9888 and 0.2538 (N = 16: 0.9969 / 0.2289 against 0.9931 /
   0.2315). Parked alpha = 5 gave no gain and 2 a third of it. The same rule as responsibility
   (``pairs="yield"``: parked agents take on the whole of each pair with a moving one) gave
   success 0.9975 and T 0.2411 at N = 8, but a safe rate of 0.9975 (N = 16: 0.9912, N = 64:
   0.9891): a parked agent braking alone cannot always get out of the way. Ten minutes of MAPPO have not
   found such a rule: with ``neighbour_reward = 1`` and (start alpha, initial log std) of
   (5, 0.5), (5, 1) in a smaller arena (``arena_size = 0.7``), and (10, 0) with
   ``reward = "goal"`` in that arena (rollouts of 64 x 50 and of 32 x 25, and with exploration
   noise held for about 10 steps instead of drawn afresh each step), and (10, 0.5) with
   ``reward = "goal"`` on a curriculum where half the agents start parked at their goals, the
   learned gains of parked and moving agents stayed within 10% of each other (medians
   6.5 / 6.8, 50 / 50, 9.9 / 9.9, 10.6 / 10.6, 13.3 / 13.8, 10.0 / 9.4), and success at
   N = 8, 16, 64 came within 0.004 of the fixed gain's. Thirty minutes on one thread (768,000
   steps, three times the budget's) from start alpha 10 gave success and T equal to the fixed
   gain's to four places at N = 8, 16, 64: every learned gain kept ``gamma`` at 1. The hand rule's
   parked gain (0.5) lies three standard deviations of the usual exploration below a start at 10,
   so a start between the two was tried: alpha 2.2 with initial log std 0.4 (std 1.5) and
   ``neighbour_reward = 1``, 10 minutes on one thread (218,000 steps). The gains rose back towards
   the fixed best (medians 7.5 parked, 9.0 / 9.8 / 12.3 moving at N = 8 / 16 / 64), with success
   0.9862 / 0.9906 / 0.9961 against the fixed gain's 0.9888 / 0.9906 / 0.9969.
   Neither reward of those runs pays for the hand rule: over 200 episodes at N = 8 it lowers the
   ``goal`` return (99.7 to 94.0: an agent home loses ``goal_reward`` each step it makes way) and
   leaves the ``progress`` return level (1.064 / 1.066), while ``reward="arrival"`` (the first
   arrival, and how soon) rises with it (-11.64 to -11.44) and orders parked gains 10 / 2 / 0.5 /
   0.1 as success and T do. Trained on ``arrival`` with ``neighbour_reward = 1`` (10 minutes on one
   thread, 180,000-320,000 steps; start alpha, initial log std, learning rate; success / T at N = 8,
   16, 64 against the fixed gain's 0.9888 / 0.9906 / 0.9969 and 0.2538 / 0.2324 / 0.2138): (10,
   -0.5, 7e-4, 5 epochs of one minibatch) and the same with a shared reward gave the fixed gain's
   figures to four places at N = 8 (gains about 10.5 for everyone); with 10 epochs of 4 minibatches,
   (2.2, 0.4, 7e-4) gave 0.9938 / 0.9962 / 0.9930 and 0.2542 / 0.2338 / 0.2306 (parked agents'
   mean gain 4.0, moving 7.6); (4.5, 0.4, 7e-4) 0.9900 / 0.9912 / 0.9938; (2.2, 0.4, 2e-3) 0.9888 /
   0.9950 / 0.9953 and T 0.2627 / 0.2420 / 0.2236 (parked 1.1, moving 3.5); (10, 0.4, 2e-3) 0.9912
   / 0.9944 / 0.9930 and T 0.2530 / 0.2375 / 0.2312; (5, 0.4, 2e-3) 0.9850 / 0.9931 / 0.9961; (10,
   0, 7e-4) 0.9900 / 0.9894 / 0.9945. On both threads (253,000 steps), (2.2, 0.4, 7e-4) beat the
   fixed gain's success at every N, 0.9950 / 0.9956 / 0.9984, but not its T, 0.2591 / 0.2376 /
   0.2259 (parked 3.4, moving 5.9). The arrival reward separates parked and moving gains, but in
   this budget moving agents' gains stay under 10, where gamma reaches 1, and cost T.
   More recipes on ``arrival`` with ``neighbour_reward = 1`` (10 epochs of 4 minibatches, one
   thread, two at a time): a start at alpha 30 (gamma 1 for everyone at a zero action), learning
   rate 7e-4 and 2e-3, gave success 0.9850 / 0.9919 / 0.9906 (a safe rate of 0.9992 at N = 64) and
   0.9888 / 0.9931 / 0.9953 (T 0.2555 / 0.2310 / 0.2168); a discount of 0.9 for 0.99 (arriving a
   step sooner then earns a tenth of ``goal_reward``, not a hundredth), from 2.2 and 10, gave
   0.9925 / 0.9931 / 0.9945 (T 0.2607 / 0.2397 / 0.2294) and 0.9900 / 0.9938 / 0.9961 (T 0.2579 /
   0.2334 / 0.2224); 30 minutes from 2.2 (634,000 steps) gave 0.9838 / 0.9938 / 0.9867 and T
   0.2575 / 0.2335 / 0.2342: moving agents' gains rose (median 50, 18% under 10), and so did
   parked agents' (median 39); training in denser arenas (``arena_size`` 0.7 and 0.5, where agents
   pass parked ones more often) from 2.2 gave 0.9875 / 0.9931 / 0.9969 (T 0.2614 / 0.2436 /
   0.2304) and 0.9825 / 0.9838 / 0.9766; no entropy bonus, and 256 copies in rollouts of 25, gave
   0.9888 / 0.9950 / 0.9961 (T 0.2559 / 0.2356 / 0.2200) and 0.9875 / 0.9931 / 0.9977 (T 0.2565 /
   0.2346 / 0.2154); the neighbour reward counted within 0.3 and 0.5 of each agent, not the sensing
   radius 1 (fewer agents' noise in each return; a patch for the run, not a setting), gave 0.9912
   / 0.9962 / 0.9961 (T 0.2564 / 0.2360 / 0.2231) and 0.9912 / 0.9944 / 0.9891 (T 0.2547 /
   0.2393 / 0.2358). On the same episodes the hand rule with parked alpha 1, 0.5 and
   0.1 gives success 0.9900 / 0.9956 / 0.9984, 0.9962 / 0.9975 / 0.9984 and 0.9950 / 1 / 1, and
   T 0.2533 / 0.2295 / 0.2114, 0.2503 / 0.2292 / 0.2116 and 0.2501 / 0.2264 / 0.2100: all three
   beat the fixed gain in both. Yet parked alpha 1 raises the training return by 0.20 an
   episode (-32.09 to -31.89 over 200 episodes at N = 8), where one episode's return has a
   standard deviation of 22: the signal PPO has to find is about 1% of the noise it sees.
   Where fixed gains deadlock, as the seed paper's claim asks: with no detour (``detour = 0``)
   the best of the fixed gains 0.5, 1, 2, 5 and 10 (10 again) reaches success 0.9375 / 0.9556 /
   0.9563 and T 0.2776 / 0.2544 / 0.2451, and the hand rule (parked alpha 1) 0.9463 / 0.9625 /
   0.9695. Online gains trained with no detour, from 2.2 and from 10 (10 minutes), and from 2.2 for
   30 minutes, gave 0.9300 / 0.9475 / 0.9383, 0.9375 / 0.9481 / 0.9648 (T 0.2771 / 0.2575 / 0.2426)
   and 0.9387 / 0.9575 / 0.9563: within 0.01 of the fixed gain, above and below it.
   A shorter GAE horizon (``gae_lambda`` 0.5 for 0.95: a yield shows in the next few TD errors,
   and each further step adds every neighbour's noise) separates parked and moving gains most.
   From 2.2 (initial log std 0.4, 10 epochs of 4 minibatches, ``arrival`` with
   ``neighbour_reward = 1``, 10 minutes on one thread, 205,000-230,000 steps), training seeds 0,
   1 and 2 gave median gains of 3.3 / 1.6 / 2.5 parked and 13.7 / 6.8 / 7.6 moving, success
   0.9925 / 0.9950 / 0.9922, 0.9925 / 0.9944 / 0.9961 and 0.9925 / 0.9931 / 0.9953, and T
   0.2524 / 0.2328 / 0.2285, 0.2558 / 0.2387 / 0.2230 and 0.2556 / 0.2377 / 0.2292: above the
   fixed gain's success at N = 8 and 16 every time, below it at N = 64, and slower than it (a
   larger T) everywhere but seed 0 at N = 8. Alone on both threads (349,000 steps), seed 0 gave
   medians 1.3 / 6.2, success 0.9962 / 0.9956 / 0.9961 and T 0.2533 / 0.2387 / 0.2364: better than
   the fixed gain in both at N = 8, slower at 16 and 64; seed 1 (336,000 steps) gave medians 5.1 /
   12.5, success 0.9888 / 0.9912 / 0.9945 and T 0.2550 / 0.2357 / 0.2291, slower at every N. With
   lambda 0.5 from 10, 30 and 5 every gain rose (medians 35, 25 and 18 parked, 47, 35 and 27
   moving), with success 0.9888 / 0.9900 / 0.9938, 0.9850 / 0.9956 / 0.9961 and 0.9900 / 0.9931 /
   0.9969 and T 0.2537 / 0.2334 / 0.2181, 0.2558 / 0.2319 / 0.2208 and 0.2544 / 0.2304 / 0.2165;
   lambda 0.3 from 2.2, and lambda 0.5 from 2.2 with initial log std 0, gave medians 8.4 / 20 and
   2.9 / 6.8 and T 0.2551 / 0.2333 / 0.2227 and 0.2559 / 0.2317 / 0.2206. A choice among gains 0.5,
   1, 2, 5 and 10 (a categorical policy; a patch for the run, not a setting) did no better: with
   lambda 0.5 and 0.95 moving agents' likeliest gain was 10 in 53% and 34% of steps, and T 0.2555 /
   0.2343 / 0.2289 and 0.2638 / 0.2387 / 0.2260. Moving agents' gains under 10, where ``gamma``
   is under 1, keep costing T.
   A Beta policy on the gain (``cbf_gain = "beta"`` with ``cbf_alpha = 10``: the action is a
   fraction of 10, so it is ``gamma`` itself, and no draw lands past the point where gains all play
   alike) starts at a mean fraction of 0.5 (alpha 5). On ``arrival`` with ``neighbour_reward = 1``,
   lambda 0.5 (and 0.95), 10 epochs of 4 minibatches, 10 minutes on one thread (211,000-214,000
   steps): with the entropy bonus, which pulls a Beta toward the uniform, median gains 4.7 / 5.1
   (5.8 / 7.1) parked / moving, success 0.9875 / 0.9925 / 0.9961 (0.9888 / 0.9894 / 0.9984) and T
   0.2548 / 0.2299 / 0.2155 (0.2573 / 0.2380 / 0.2174); with none, at learning rates 7e-4 and 2e-3,
   medians 6.1 / 6.5 and 5.7 / 6.9, success 0.9888 / 0.9925 / 0.9969 and 0.9900 / 0.9919 / 0.9969
   and T 0.2546 / 0.2323 / 0.2163 and 0.2527 / 0.2320 / 0.2168: the second above the fixed gain in
   both at N = 8 and 16 and slower at 64. That one alone on both threads (330,000 steps): medians
   4.5 / 6.3, success 0.9925 / 0.9938 / 0.9938 and T 0.2552 / 0.2326 / 0.2203. On the part's own
   ``progress`` reward (5 epochs of one minibatch, learning rate 2e-3, no entropy bonus, both
   threads, 563,000 steps) the gains rose together to a median of 8.5 with no parked / moving split,
   success 0.9900 / 0.9919 / 0.9961 and T 0.2524 / 0.2305 / 0.2171: again above the fixed gain in
   both at N = 8 and 16, and slower at 64. The Beta's gains barely leave their start in this budget.
   On six other blocks of episodes (reset seeds 100-105; 100 episodes at N = 8 and 16, 20 at 64)
   that last policy trails the fixed gain at every N, by 0.0021 +- 0.0018 / 0.0011 +- 0.0013 /
   0.0013 +- 0.0010 in success and 0.0004 +- 0.0013 / 0.0012 +- 0.0009 / 0.0013 +- 0.0008 in T
   (paired differences and their standard errors over the blocks): its wins on the evaluation
   episodes above are within the noise. Played at the Beta's mode rather than its mean, the four
   Beta policies moved by as much in either direction. Started near the top instead (the head's
   last bias set to (6, -6) and (2, -2), first mean fractions 0.87 and 0.73; a patch for the run,
   not a setting), on ``arrival`` with lambda 0.5, learning rate 2e-3 and no entropy bonus (one
   thread, 179,000 steps), the parked agents' gains ended above the moving ones' (medians 9.4 /
   9.0 and 9.1 / 8.6), with success 0.9875 / 0.9894 / 0.9867 and 0.9850 / 0.9919 / 0.9922 and T
   0.2544 / 0.2360 / 0.2328 and 0.2531 / 0.2338 / 0.2211: behind the fixed gain at N = 64.
   The part's own recipe (the ``progress`` reward, a start at the best fixed gain, 5 epochs of one
   minibatch), run on both threads with the present filter, gave success 0.9875 / 0.9938 / 0.9969 /
   0.9980 and T 0.2538 / 0.2311 / 0.2131 / 0.2094 at N = 8 / 16 / 64 / 256 after 576,000 steps, and
   0.9888 / 0.9931 / 0.9961 / 0.9976 and 0.2537 / 0.2313 / 0.2149 / 0.2082 after 512,000 in a later
   run, against the fixed gain's 0.9888 / 0.9906 / 0.9969 / 0.9971 and 0.2538 / 0.2324 / 0.2138 /
   0.2082. On that later run's paired blocks (5 sets of episodes at each N), online minus fixed is
   +0.0000 +- 0.0000 / +0.0009 +- 0.0005 / -0.0005 +- 0.0006 / -0.0004 +- 0.0006 in success and
   -0.0001 +- 0.0001 / -0.0002 +- 0.0002 / +0.0007 +- 0.0003 / +0.0006 +- 0.0003 in T: the gains
   stay near the start (10, where ``gamma`` is 1), level with the fixed gain at N = 8 and 16, and a
   little slower at 64 and 256.
   Most of the noise in those returns is decided by the start state, and the critic leaves it in: on
   a trained Beta policy (``arrival``, ``neighbour_reward = 1``, lambda 0.5; 100 start states played
   twice with their own draws), the return from the first step has a standard deviation of 28 across
   episodes, the critic's error in it is 21, and two plays of one start differ by 6 (t = 30: 12.6,
   8.1 and 6.3). So copies were played in groups of 4 from one start with a leave-one-out baseline
   (``group_size = 4``, ``terminate_on_goals = False``; the same reward, 10 minutes on one thread,
   each line success / T at N = 8, 16, 64 and median gains parked / moving at N = 8). From 10
   (log-normal), lambda 0.95 and 1, 5 epochs of one minibatch (333,000 steps): the fixed gain's
   figures to four places, every gain 11.6-12.5. From 2 (log-normal) and from a Beta at a mean
   fraction 0.27 (the head's bias (-2, 2); a patch for the run), with lambda 0.95: 0.9875 / 0.9944 /
   0.9898, 0.2601 / 0.2383 / 0.2246, 3.3 / 3.5; and 0.9900 / 0.9906 / 0.9930, 0.2555 / 0.2322 /
   0.2187, 5.8 / 5.8. Those two with 10 epochs of 8 minibatches and no entropy bonus (180,000-
   189,000 steps): 0.9900 / 0.9906 / 0.9891 and 0.9875 / 0.9900 / 0.9969, T 0.2703 / 0.2483 / 0.2295
   and 0.2607 / 0.2393 / 0.2236, 2.4 / 2.6 and 4.7 / 4.8. The lambda 0.5 recipe that split gains
   best (from 2.2, initial log std 0.4, 10 epochs of 4 minibatches; 189,000-192,000 steps), training
   seeds 0 and 1: 3.3 / 7.9 with 0.9900 / 0.9906 / 0.9930 and T 0.2570 / 0.2403 / 0.2348, and every
   gain falling (1.1 / 0.8) with 0.9437 / 0.9337 / 0.8648 and T 0.3463 / 0.3734 / 0.4244. None beat
   the fixed gain in both figures at any N: a better baseline does not make the parked agents' yield
   worth learning in this budget. Fitting the GNN actor to the hand rule by regression takes about
   300 Adam steps; a 10-minute run of 5 epochs of one minibatch takes about 500 in all, each on a
   signal of about 1% of its noise (above).
   Why (part **parked-gain** below, no training; the same reward, episodes of full length, moving
   agents at 10 and the parked agents' gain set by hand; 1,000 shared episodes, discounted return
   per agent minus the fixed gain's): parked alpha 7, 5, 3.5, 2, 1, 0.5 and 0.2 give -0.08 +- 0.06,
   +0.03 +- 0.06, +0.14 +- 0.07, +0.26 +- 0.08, +0.29 +- 0.10, +0.53 +- 0.08 and +0.59 +- 0.08. The
   return is flat, or dips, from 10 down to 5, so a policy gradient from the fixed gain points away
   from the rule: with log-normal draws of standard deviation 0.6 and a twin baseline (600
   episodes), the score-function gradient in the parked gain's log is +4.4 +- 2.2 per episode at 10.
   From 2 it points the right way, -1.3 +- 1.8, but with a standard deviation of 45 per episode it
   takes about 1,200 episodes (120,000 copy-steps) for one standard error and about 10,900 (1.1
   million copy-steps) for three: three to six times what 10 minutes give (180,000-340,000), for one
   number and the best baseline, before the moving agents' much stronger signal through the shared
   network is counted. With four times the samples (256 copies, one epoch of 4 minibatches, learning
   rate 2e-3, from 2.2 with initial log std 0.4 and lambda 0.5, both threads: 1.29 million
   copy-steps in 10 minutes), the gains all rose past 10 (medians 21.7 parked, 32.6 moving), and
   success and T matched the fixed gain's to four places but T at N = 64 (0.2139).
3. **parked-gain**: what a policy gradient on the online gains has to find (no training). On
   the ``arrival`` reward with ``neighbour_reward = 1`` and episodes of full length, moving
   agents at the best fixed gain (10) and parked agents at a gain set by hand: the discounted
   return per agent against the parked gain (``PARKED_GAINS``, ``PARKED_EPISODES`` shared
   episodes, paired differences from 10); and the score-function gradient of the return in the
   parked agents' log-gain, with log-normal draws (standard deviation ``PARKED_SIGMA``) around
   each of ``GRADIENT_AT``, over ``GRADIENT_STARTS`` start states played twice, each play with
   its own draws and the other as its baseline, with the episodes its sign needs.
4. **scale**: decentralized steps per second with N = 1024 agents in one world: the graph,
   the GNN actor and the CBF filter, timed apart and together (warm-up excluded).

Results go to ``benchmarks/results/navigation.json`` (each part's entry replaced when run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

import scenarios
from marl.cbf import CBFFilter, force_to_actions, nominal_forces, scripted_cbf_policy
from marl.mappo import MAPPOConfig, MAPPOPolicy, gae
from marl.mappo_train import controller_of, train
from scenarios.navigation import episode_metrics, goal_seeking_policy

INFORMARL_COLLISIONS = {3: 0.40, 7: 0.74, 10: 0.95, 15: 1.28}  # Nayak et al. 2023, Table 2 (S% = 100 at each)
TRANSFER_SIZES = (3, 7, 10, 15)
# The move filters the transfer part also plays (at alpha = 10, gamma = 1, and no margin, since InforMARL counts
# contact itself), all with the one-step lookahead: half responsibility between agents; agents parked at their
# goals taking the whole of each pair with a travelling agent (``pairs="yield"``), and with travelling agents
# leaving each other alone too (``pairs="parked"``); obstacles only.
# Last, only agents parked at their goals filtered (``pairs="parked_only"``), keeping 0.06 beyond contact.
TRANSFER_FILTERS = {"lookahead": CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead"),
                    "lookahead_yield": CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead", pairs="yield"),
                    "lookahead_parked": CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead", pairs="parked"),
                    "lookahead_obstacles": CBFFilter(alpha=10.0, margin=0.0, barrier="lookahead", pairs="obstacles"),
                    "lookahead_parked_only": CBFFilter(alpha=10.0, margin=0.06, barrier="lookahead",
                                                       pairs="parked_only")}
# InforMARL's figures come from 100 episodes per N; ours swing by about 10% from one 100 to the next, so the
# trained GNN is also measured over BLOCKS blocks of 100 episodes (evaluation seeds 11, 12, ...).
BLOCKS = 10
# Both models train with the reward counting an agent home only within 0.03 of its goal (``reward_radius``); every
# figure is measured on the task's own radius, 0.05. Trained at 0.05, some policies stop 0.05-0.09 from their goals
# when 15 agents crowd their graphs, just outside the radius (see the NOTE).
TRAIN_REWARD_RADIUS = 0.03
SAFETY_SIZES = {8: 100, 16: 100, 64: 20, 256: 8}  # N: evaluation episodes
# Online and fixed gains differ by less than one block of episodes swings, so the safety part also plays both on
# SAFETY_BLOCKS blocks (reset seeds 11, 12, ...; the first is the block above) and reports the paired differences.
SAFETY_BLOCKS = 5
ALPHA_GRID = (1.0, 2.0, 5.0, 10.0, 20.0)
PARTS = ("transfer", "safety", "unfiltered", "parked-gain", "scale")
# The parked-gain part: gains of parked agents (moving ones at 10), shared episodes, and where the gradient is taken.
PARKED_GAINS = (7.0, 5.0, 3.5, 2.0, 1.0, 0.5, 0.2)
PARKED_EPISODES = 1000
PARKED_SIGMA = 0.6  # the online gains' exploration at MAPPO's initial log std (-0.5)
GRADIENT_AT = (10.0, 2.0)
GRADIENT_STARTS = 300
PARKED_SETTINGS = {"num_agents": 8, "reward": "arrival", "neighbour_reward": 1.0, "terminate_on_goals": False}
RESULTS = os.path.join(os.path.dirname(__file__), "results", "navigation.json")


def _world(settings: dict, episodes: int, device: torch.device):
    """The evaluation world: ``episodes`` copies of navigation with ``settings``, drawn from seed 7."""
    return scenarios.make("navigation", num_envs=episodes, seed=7, device=device, **settings)


def _block_rows(policy, settings: dict, episodes: int, blocks: int, device: torch.device) -> list[dict]:
    """``episode_metrics`` of ``policy`` on ``blocks`` sets of ``episodes`` episodes (reset seeds 11, 12, ...),
    each with the ``seconds`` it took."""
    rows = []
    for seed in range(11, 11 + blocks):
        game = _world(settings, episodes, device)
        start = time.perf_counter()
        measured = episode_metrics(policy, game, seed)
        measured["seconds"] = time.perf_counter() - start
        rows.append(measured)
    return rows


def _rounded(measured: dict) -> dict:
    """One set's figures as stored: to 4 places, without the per-episode returns."""
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in measured.items()
            if key != "episode_returns"}


def _metrics(policy, settings: dict, episodes: int, device: torch.device) -> dict:
    return _rounded(_block_rows(policy, settings, episodes, 1, device)[0])


def _blocks(policy, settings: dict, device: torch.device) -> dict:
    """``BLOCKS`` blocks of 100 episodes: the mean of each figure over blocks, its standard error, and the
    worst block's S% and collisions per agent."""
    rows = _block_rows(policy, settings, 100, BLOCKS, device)
    out: dict = {"blocks": BLOCKS, "episodes": 100 * BLOCKS}
    for key in ("success_rate", "collisions_per_agent", "time_to_goal", "safe_rate", "agent_success_rate"):
        values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_standard_error"] = round(float(values.std() / len(rows) ** 0.5), 4)
    out["worst_block_success_rate"] = min(row["success_rate"] for row in rows)
    out["worst_block_collisions_per_agent"] = round(max(row["collisions_per_agent"] for row in rows), 4)
    return out


def _paired(policy_rows: list[dict], baseline_rows: list[dict]) -> dict:
    """Two policies' ``_block_rows`` on the same sets of episodes: each one's mean success rate (GCBF+'s) and T
    over the sets, the mean paired difference (policy minus baseline) with its standard error over the sets,
    and each one's lowest safe rate in any set."""
    rows = {"policy": policy_rows, "baseline": baseline_rows}
    out: dict = {"blocks": len(policy_rows), "episodes": sum(row["episodes"] for row in policy_rows)}
    for key in ("agent_success_rate", "time_to_goal"):
        ours, theirs = (torch.tensor([row[key] for row in rows[name]], dtype=torch.float64)
                        for name in ("policy", "baseline"))
        difference = ours - theirs
        out[key] = {"policy": round(float(ours.mean()), 4), "baseline": round(float(theirs.mean()), 4),
                    "difference": round(float(difference.mean()), 4),
                    "standard_error": round(float(difference.std() / len(difference) ** 0.5), 4)}
    for name in ("policy", "baseline"):
        out[f"{name}_lowest_safe_rate"] = min(row["safe_rate"] for row in rows[name])
    return out


def _train(config: MAPPOConfig, settings: dict, minutes: float, device: torch.device, label: str, log: bool):
    game = scenarios.make("navigation", num_envs=config.num_envs, seed=config.seed, device=device, **settings)

    def show(stats: dict, _) -> None:
        if log:
            print(f"  {label}: {stats['env_steps']:>10,.0f} steps {stats['seconds']:7.1f} s "
                  f"return {stats['episode_return']:+.2f}", file=sys.stderr, flush=True)

    result = train(game, config, device=device, time_limit=60 * minutes, callback=show)
    return result, {"env_steps": result.env_steps, "updates": result.updates, "seconds": round(result.seconds, 1),
                    "curve": result.curve}


def transfer(minutes: float, mlp_minutes: float, device: torch.device, log: bool) -> dict:
    preset = {"preset": "informarl"}
    out = {"informarl_collisions_per_agent": INFORMARL_COLLISIONS}

    def sweep(policy, label: str) -> dict:  # InforMARL's task with each of TRANSFER_SIZES agents, 100 episodes each
        rows = {count: _metrics(policy, {**preset, "num_agents": count}, 100, device) for count in TRANSFER_SIZES}
        if log:
            _print_transfer(label, rows)
        return rows

    # A reference with no learning: each agent pushes straight at its goal and ignores everyone.
    out["goal_seeker"] = sweep(goal_seeking_policy, "goal seeker")
    for name, cbf in TRANSFER_FILTERS.items():
        out[f"goal_seeker_{name}"] = sweep(scripted_cbf_policy(cbf), f"goal seeker, {name}")
    for model, budget in (("gnn", minutes), ("mlp", mlp_minutes)):
        # NOTE: 5 PPO epochs (MAPPO's MPE runs: 10): on a wall-clock budget, fresh samples help more.
        config = MAPPOConfig(model=model, env_steps=10**12, num_envs=128, epochs=5, log_every=128 * 25 * 8)
        result, run = _train(config, {**preset, "reward_radius": TRAIN_REWARD_RADIUS}, budget, device,
                             f"MAPPO {model}", log)
        run["config"] = {"epochs": config.epochs, "num_envs": config.num_envs, "model": model,
                         "reward_radius": TRAIN_REWARD_RADIUS}
        policy = MAPPOPolicy(result.learner)
        run["evaluation"] = sweep(policy, model)
        if model == "gnn":  # the trained moves through the move filter (marl.cbf.CBFFilter.filter_moves)
            for name, cbf in TRANSFER_FILTERS.items():
                run[f"evaluation_{name}"] = sweep(cbf(policy), f"{model}, {name}")
            # The moves drawn from the policy (gamelab evaluate --sample) instead of its most likely ones.
            sampled = MAPPOPolicy(result.learner, sample=True, seed=11)
            run["evaluation_sampled"] = sweep(sampled, f"{model} sampled")
            for name, cbf in TRANSFER_FILTERS.items():
                run[f"evaluation_sampled_{name}"] = sweep(cbf(sampled), f"{model} sampled, {name}")
            # Over BLOCKS x 100 episodes: unfiltered, and with only the agents parked at their goals filtered.
            only = TRANSFER_FILTERS["lookahead_parked_only"]
            for key, played in (("blocks", policy), ("blocks_lookahead_parked_only", only(policy)),
                                ("blocks_sampled_lookahead_parked_only",
                                 only(MAPPOPolicy(result.learner, sample=True, seed=11)))):
                run[key] = {count: _blocks(played, {**preset, "num_agents": count}, device) for count in TRANSFER_SIZES}
                if log:
                    _print_blocks(f"{model} {key}", run[key])
        out[model] = run
    return out


def _print_transfer(label: str, rows: dict) -> None:
    for count, row in rows.items():
        print(f"{label} N={count:>2}: S% {row['success_rate']:5.1f}  collisions/agent "
              f"{row['collisions_per_agent']:.3f} (InforMARL {INFORMARL_COLLISIONS[count]:.2f})  "
              f"T {row['time_to_goal']:.3f}", file=sys.stderr, flush=True)


def _print_blocks(label: str, rows: dict) -> None:
    for count, row in rows.items():
        print(f"{label} N={count:>2}, {row['episodes']} episodes: S% {row['success_rate']:5.1f} (worst 100: "
              f"{row['worst_block_success_rate']:.0f})  collisions/agent {row['collisions_per_agent']:.3f} +- "
              f"{row['collisions_per_agent_standard_error']:.3f} (InforMARL {INFORMARL_COLLISIONS[count]:.2f}; worst "
              f"100: {row['worst_block_collisions_per_agent']:.3f})  T {row['time_to_goal']:.3f}",
              file=sys.stderr, flush=True)


def safety(minutes: float, device: torch.device, log: bool) -> dict:
    out: dict = {}
    grid = {alpha: _metrics(scripted_cbf_policy(CBFFilter(alpha=alpha)), {"num_agents": 8}, 100, device)
            for alpha in ALPHA_GRID}
    best = max(ALPHA_GRID, key=lambda alpha: (grid[alpha]["agent_success_rate"], -grid[alpha]["time_to_goal"]))
    out["fixed_gain_grid_n8"] = grid
    out["best_fixed_alpha"] = best
    # The online gains start from the best fixed gain (a zero action is cbf_alpha) and learn to move
    # away from it where the state calls for it; 5 PPO epochs, as in the transfer part.
    config = MAPPOConfig(model="gnn", filter="online-cbf", cbf_alpha=best, env_steps=10**12, num_envs=64,
                         rollout_length=50, epochs=5, log_every=64 * 50 * 4)
    result, run = _train(config, {"num_agents": 8}, minutes, device, "online CBF", log)
    online = MAPPOPolicy(result.learner, controller_of(config))
    out["online_training"] = run
    fixed = scripted_cbf_policy(CBFFilter(alpha=best))
    rows = {}
    for count, episodes in SAFETY_SIZES.items():
        settings = {"num_agents": count}
        online_rows = _block_rows(online, settings, episodes, SAFETY_BLOCKS, device)
        fixed_rows = _block_rows(fixed, settings, episodes, SAFETY_BLOCKS, device)
        rows[count] = {  # the first set of episodes, and the goal seeker on it
            "online_cbf": _rounded(online_rows[0]),
            "fixed_cbf": _rounded(fixed_rows[0]),
            "unfiltered": _metrics(goal_seeking_policy, settings, episodes, device),
        }
        if log:
            for name, row in rows[count].items():
                print(f"N={count:>3} {name:>10}: safe {row['safe_rate']:.3f} success {row['agent_success_rate']:.3f} "
                      f"finish {row['finish_rate']:.3f} T {row['time_to_goal']:.3f}", file=sys.stderr, flush=True)
        paired = _paired(online_rows, fixed_rows)
        rows[count]["online_minus_fixed"] = paired
        if log:
            print(f"N={count:>3} online - fixed over {paired['episodes']} episodes: "
                  + "  ".join(f"{label} {paired[key]['policy']:.4f} - {paired[key]['baseline']:.4f} = "
                              f"{paired[key]['difference']:+.4f} +- {paired[key]['standard_error']:.4f}"
                              for label, key in (("success", "agent_success_rate"), ("T", "time_to_goal")))
                  + f"  lowest safe rate {paired['policy_lowest_safe_rate']:.3f} / "
                    f"{paired['baseline_lowest_safe_rate']:.3f}", file=sys.stderr, flush=True)
    out["evaluation"] = rows
    return out


def unfiltered(minutes: float, device: torch.device, log: bool) -> dict:
    """The safety part's other baseline: the GNN policy trained on the same task with no filter."""
    config = MAPPOConfig(model="gnn", env_steps=10**12, num_envs=64, rollout_length=50, log_every=64 * 50 * 4)
    result, run = _train(config, {"num_agents": 8}, minutes, device, "unfiltered GNN", log)
    policy = MAPPOPolicy(result.learner)
    run["evaluation"] = {count: _metrics(policy, {"num_agents": count}, episodes, device)
                         for count, episodes in SAFETY_SIZES.items()}
    if log:
        for count, row in run["evaluation"].items():
            print(f"N={count:>3} unfiltered GNN: safe {row['safe_rate']:.3f} success {row['agent_success_rate']:.3f} "
                  f"finish {row['finish_rate']:.3f} T {row['time_to_goal']:.3f}", file=sys.stderr, flush=True)
    return run


def _parked_gain_episodes(game, parked_alpha: float, sigma: float, generator: torch.Generator | None,
                          gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode in every copy of ``game`` (reset already) with moving agents at gain 10 and parked ones at
    ``parked_alpha exp(sigma eps)``, ``eps`` standard normal per agent and step.

    Returns ``(T, B, N)`` discounted returns to go, and ``(T, B, N)`` the score of each step's draw in the
    parked log-gain's offset (``eps / sigma`` for parked agents, else 0; zeros when ``sigma`` is 0)."""
    cbf = CBFFilter(alpha=10.0)
    rewards, scores = [], []
    for _ in range(game.max_steps):
        parked = game.goal_distance() <= game.config.goal_radius  # (B, N)
        if sigma > 0:
            noise = torch.randn(parked.shape, generator=generator, device=parked.device, dtype=game.dtype)
            alpha = torch.where(parked, parked_alpha * torch.exp(sigma * noise), 10.0)
            scores.append(torch.where(parked, noise / sigma, 0.0))
        else:
            alpha = torch.where(parked, parked_alpha, 10.0).to(game.dtype)
            scores.append(torch.zeros_like(alpha))
        safe = force_to_actions(cbf.commands(game, nominal_forces(game), alpha), game.config.acceleration)
        _, reward, _, _, _ = game.step({agent: safe[:, index] for index, agent in enumerate(game.possible_agents)})
        rewards.append(torch.stack([reward[agent] for agent in game.possible_agents], 1).to(torch.float64))
    stacked = torch.stack(rewards)  # (T, B, N); the episode fills the T steps, so nothing follows the last
    zeros = torch.zeros_like(stacked)
    ongoing = torch.zeros(stacked.shape[:2], dtype=torch.bool, device=stacked.device)
    returns = gae(stacked, zeros, zeros[0], ongoing, gamma, 1.0)  # with values 0 and lambda 1: returns to go
    return returns, torch.stack(scores).to(torch.float64)


def parked_gain(device: torch.device, log: bool, gamma: float = 0.99) -> dict:
    out: dict = {"settings": PARKED_SETTINGS, "gamma": gamma, "returns": {}, "gradients": {}}

    def start_returns(parked_alpha: float) -> torch.Tensor:
        game = _world(PARKED_SETTINGS, PARKED_EPISODES, device)
        game.reset(seed=31)
        return _parked_gain_episodes(game, parked_alpha, 0.0, None, gamma)[0][0].mean(1)  # (B,) per agent

    fixed = start_returns(10.0)
    for alpha in PARKED_GAINS:
        difference = start_returns(alpha) - fixed
        row = {"return_minus_fixed": round(float(difference.mean()), 4),
               "standard_error": round(float(difference.std() / PARKED_EPISODES ** 0.5), 4)}
        out["returns"][alpha] = row
        if log:
            print(f"parked alpha {alpha:>4}: discounted return per agent minus alpha 10's "
                  f"{row['return_minus_fixed']:+.4f} +- {row['standard_error']:.4f}", file=sys.stderr, flush=True)
    starts = GRADIENT_STARTS
    for alpha in GRADIENT_AT:
        game = _world(PARKED_SETTINGS, 2 * starts, device)
        game.reset(seed=21, options={"streams": torch.arange(starts).repeat(2)})  # copy c and c + starts: one start
        generator = torch.Generator(device=device).manual_seed(5)
        returns, scores = _parked_gain_episodes(game, alpha, PARKED_SIGMA, generator, gamma)
        twins = torch.cat([returns[:, starts:], returns[:, :starts]], 1)
        per_episode = (scores * (returns - twins)).sum((0, 2))  # (2 starts,) the estimate from each episode
        mean, deviation = float(per_episode.mean()), float(per_episode.std())
        row = {"gradient_per_episode": round(mean, 2), "standard_error": round(deviation / (2 * starts) ** 0.5, 2),
               "standard_deviation": round(deviation, 1), "episodes_for_one_standard_error": round((deviation / mean) ** 2),
               "episodes_for_three": round(9 * (deviation / mean) ** 2)}
        out["gradients"][alpha] = row
        if log:
            print(f"gradient in the parked log-gain at {alpha:>4}: {mean:+.2f} +- {row['standard_error']:.2f} per "
                  f"episode (standard deviation {deviation:.1f}); episodes for its sign at one standard error: "
                  f"{row['episodes_for_one_standard_error']:,}, at three: {row['episodes_for_three']:,}",
                  file=sys.stderr, flush=True)
    return out


def scale(device: torch.device, repeats: int = 5) -> dict:
    from marl.gnn import navigation_graph
    from marl.mappo import MAPPO, PolicySpec

    config = MAPPOConfig(model="gnn", filter="online-cbf")
    game = scenarios.make("navigation", num_envs=1, seed=0, device=device, num_agents=1024, num_obstacles=16)
    learner = MAPPO(PolicySpec.of(game, config), config, device)
    policy = MAPPOPolicy(learner, controller_of(config))
    observations, _ = game.reset(seed=0)
    radius = game.config.sensing_radius

    def timed(work) -> float:
        work()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats

    snapshot = learner.model.observe(game, observations)
    with torch.no_grad():
        graph = timed(lambda: navigation_graph(game.entities(), radius))
        actor = timed(lambda: learner.model.act(snapshot))
        cbf = CBFFilter()
        nominal = nominal_forces(game)  # goal seeking: agents whose command breaks a row are projected
        filtering = timed(lambda: cbf.commands(game, nominal, 5.0))

        current = [observations]

        def decentralized_step() -> None:
            current[0] = game.step(policy(game, current[0]))[0]

        whole = timed(decentralized_step)
    return {"agents": 1024, "device": str(device), "graph_seconds": graph, "gnn_actor_seconds": actor,
            "cbf_filter_seconds": filtering, "policy_and_world_step_seconds": whole,
            "steps_per_second": 1.0 / whole, "edges": int(navigation_graph(game.entities(), radius).edge_index.shape[1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamelab bench navigation", description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=[], help=f"{', '.join(PARTS)} (default: all)")
    parser.add_argument("--minutes", type=float, default=20.0, help="GNN training budget of the transfer part")
    parser.add_argument("--mlp-minutes", type=float, default=5.0, help="MLP baseline's training budget")
    parser.add_argument("--safety-minutes", type=float, default=10.0, help="online-CBF training budget")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; the parts are {', '.join(PARTS)}")
    parts = args.parts or list(PARTS)
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    device = torch.device(args.device)
    results = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as handle:
            results = json.load(handle)
    for part in parts:
        started = time.perf_counter()
        if part == "transfer":
            results["transfer"] = transfer(args.minutes, args.mlp_minutes, device, not args.json)
        elif part == "safety":
            results["safety"] = safety(args.safety_minutes, device, not args.json)
        elif part == "unfiltered":
            results["safety_unfiltered_gnn"] = unfiltered(args.safety_minutes, device, not args.json)
        elif part == "parked-gain":
            results["parked_gain"] = parked_gain(device, not args.json)
        else:
            results[f"scale_{device.type}"] = scale(device)
            if not args.json:
                print(json.dumps(results[f"scale_{device.type}"]), file=sys.stderr)
        results.setdefault("wall_seconds", {})[part] = round(time.perf_counter() - started, 1)
    results["machine"] = {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    from games.io import atomic_write_text

    atomic_write_text(RESULTS, json.dumps(results, indent=1, default=str) + "\n")
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
