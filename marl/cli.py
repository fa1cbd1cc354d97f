"""The ``gamelab`` command line: the parser, and dispatch to ``marl.commands``.

    gamelab solve GAME [--solver NAME] [--iterations N] [--target-nash-conv X] [--seed S]
                       [--device D] [--out FILE] [--plot FILE] [--json]
    gamelab psro GAME [--meta-solver NAME] [--variant psro|xdo] [--iterations K] [--out DIR] [--resume]
                      [--oracle best-response|maddpg] [--oracle-steps N] [--sims-per-entry S]
    gamelab neupl GAME [--graph psro-n|fictitious-play|self-play|cycle] [--population N] [--simplex P]
                       [--iterations K | --minutes M] [--out DIR] [--resume] [--plot FILE] [--json]
    gamelab games | solvers | scenarios     the catalogues
    gamelab render SCENARIO --out FILE.gif [--policy P]
    gamelab train maddpg --scenario NAME [--env-steps N] [--num-envs B] [--seed S]
                       [--device D] [--out DIR] [--resume] [--json]
    gamelab train mappo --scenario NAME [--model mlp|gnn] [--filter none|online-cbf] [--ippo]
                       [--env-steps N] [--minutes M] [--out DIR] [--resume] [--json]
    gamelab evaluate [CHECKPOINT | --policy scripted|random] [--scenario NAME] [--set KEY=VALUE]
                       [--filter cbf|online-cbf] [--param alpha=A] [--sample] [--episodes N] [--gif FILE] [--json]
    gamelab tournament CONFIG.yaml [--db FILE] [--backend local|ray] [--ray-address ADDR]
                       [--report DIR] [--allow-code] [--json]
    gamelab bench NAME [options]

GAME is a catalog name (``gamelab games``), a Gambit ``.nfg`` or ``.efg`` path,
``random(3,3,3,seed=1)``, ``random_zero_sum(100,100,seed=0)``, or an OpenSpiel game string:
normal-form (``matrix_rps``, ``blotto``) or sequential (``kuhn_poker``, ``leduc_poker``),
which is compiled to an extensive-form game.

Errors a user can cause (unknown names, malformed files, bad values, a wrong option)
print one line on stderr and exit with code 2; nothing is written. ``--json`` prints one
JSON object as the last line of stdout. The commands themselves are in
``marl.commands`` (``solve``, ``markov``, ``tournament``, ``psro``, ``neupl``), imported only by the
subcommand that runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from games.errors import GamelabError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported on one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _run_options(parser: argparse.ArgumentParser, trainer: str, config: str, steps: str, copies: int,
                 param_example: str, set_example: str) -> None:
    """The options every `gamelab train ALGORITHM` takes: budget, copies, seed, device, run folder, settings."""
    parser.add_argument("--env-steps", type=_positive_int, default=None, help=steps)
    parser.add_argument("--num-envs", type=_positive_int, default=None, help=f"copies stepped together (default {copies})")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device of the networks (default cpu)")
    parser.add_argument("--out", default=None, help=f"run folder (default runs/{trainer}-SCENARIO-seedS)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--minutes", type=_non_negative_float, default=None,
                        help="stop training after this many minutes (resumable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"a scenario setting, e.g. {set_example} (repeatable)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help=f"a trainer setting of {config}, e.g. {param_example} (repeatable)")
    parser.add_argument("--no-gif", action="store_true", help="skip the GIF of the trained agents")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gamelab")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from solvers import DEFAULT_ITERATIONS  # the package alone: --help answers without importing torch

    parser = _Parser(
        prog="gamelab", description="Compute equilibria of games, train agent populations, run tournaments."
    )
    parser.add_argument("--version", action="version", version=f"gamelab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    solve = commands.add_parser("solve", help="compute an equilibrium of a game")
    solve.add_argument("game", help="catalog name (gamelab games), a Gambit .nfg or .efg path, random(3,3,seed=1), "
                                    "random_zero_sum(100,100), or an OpenSpiel game string such as leduc_poker")
    solve.add_argument("--solver", default="auto", metavar="NAME",
                       help="solver (default: auto); see `gamelab solvers`")
    solve.add_argument("--iterations", type=_positive_int, default=None,
                       help=f"iteration budget of iterative solvers (default {DEFAULT_ITERATIONS})")
    solve.add_argument("--target-nash-conv", type=_non_negative_float, default=None,
                       help="stop once NashConv is at most this")
    solve.add_argument("--seed", type=int, default=0, help="seed for solvers that sample (default 0)")
    solve.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    solve.add_argument("--out", help="write the strategies as JSON to this file")
    solve.add_argument("--plot", help="write a NashConv-vs-iterations PNG to this file")
    solve.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    solve.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    psro = commands.add_parser(
        "psro", help="grow populations of policies by best responses (PSRO)",
        description="Policy-Space Response Oracles (Lanctot et al. 2017): each iteration solves the meta-game "
                    "of the populations, adds each player's best response to the others' mixtures, and reports "
                    "the mixtures' NashConv. On a normal-form or extensive-form game the best responses and "
                    "NashConv are exact; on a two-team Markov game (tag, adversary, pettingzoo:MODULE) each "
                    "team's best response is trained by MADDPG against the other team's mixture, meta-game "
                    "entries are played episodes, and NashConv is what the new best responses gain.",
    )
    psro.add_argument("game", help="as for `gamelab solve` (catalog name, .nfg/.efg path, random(...), OpenSpiel "
                                   "game), or a two-team Markov-game scenario such as tag")
    psro.add_argument("--oracle", choices=["best-response", "maddpg"], default=None,
                      help="best-response (exact; normal-form and extensive-form games) or maddpg (Markov games); "
                           "default: the one the game takes")
    psro.add_argument("--oracle-steps", type=_positive_int, default=None,
                      help="maddpg: transitions each best response trains on (default 200,000)")
    psro.add_argument("--num-envs", type=_positive_int, default=None,
                      help="maddpg: copies of the game each best response trains on (default 64)")
    psro.add_argument("--sims-per-entry", type=_positive_int, default=None,
                      help="maddpg: episodes played for each meta-game entry (default 64)")
    psro.add_argument("--warm-start", action="store_true",
                      help="maddpg: start each best response from the team's last one instead of from scratch")
    psro.add_argument("--seed", type=int, default=None, help="maddpg: the run's seed (default 0)")
    psro.add_argument("--device", default=None, help="maddpg: torch device of the games and networks (default cpu)")
    psro.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="maddpg: a scenario setting, e.g. --set num_adversaries=2 (repeatable)")
    psro.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="maddpg: a trainer setting of MADDPGConfig, e.g. --param batch_size=512 (repeatable)")
    psro.add_argument("--meta-solver", default="nash",
                      help="nash (default), prd, rm, alpharank, rectified, uniform, or cce/ce (JPSRO)")
    psro.add_argument("--variant", choices=["psro", "xdo"], default="psro",
                      help="psro (default), or xdo: the extensive-form double oracle (McAleer et al. 2021), whose "
                           "restricted game keeps the best responses' actions at every infoset and is solved by CFR+")
    psro.add_argument("--iterations", type=_positive_int, default=50, help="most iterations (default 50)")
    psro.add_argument("--target-nash-conv", type=_non_negative_float, default=None,
                      help="stop once the mixtures' NashConv is at most this")
    psro.add_argument("--out", default=None,
                      help="run folder: the populations, the meta-game, sigma at every iteration, nash_conv.png, "
                           "and state.pt, saved after every iteration")
    psro.add_argument("--resume", action="store_true",
                      help="continue the run in --out (after Ctrl-C or kill -9) up to --iterations in all")
    psro.add_argument("--backend", choices=["local", "ray"], default="local",
                      help="compute the best responses in this process (default) or as Ray tasks (same results)")
    psro.add_argument("--ray-address", default=None,
                      help="join this Ray cluster (with --backend ray); default: start a local one")
    psro.add_argument("--plot", default=None, help="write NashConv against iterations and seconds as a PNG")
    psro.add_argument("--max-memory", default=None, metavar="SIZE",
                      help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    psro.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    commands.add_parser("games", help="list the catalog of classic games")
    commands.add_parser("solvers", help="list the solvers")
    commands.add_parser("scenarios", help="list the Markov-game scenarios and their settings")

    render = commands.add_parser("render", help="write an animated GIF of one episode of a scenario")
    render.add_argument("scenario", help="scenario name; see `gamelab scenarios`")
    render.add_argument("--policy", default="random",
                        help="random, scripted (spread, navigation), a checkpoint or policy .pt from "
                             "`gamelab train`, or module:callable taking (game, observations)")
    render.add_argument("--out", required=True, help="the .gif to write")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario setting, e.g. --set num_agents=5 (repeatable)")
    render.add_argument("--steps", type=_positive_int, default=None, help="steps to play (default: one episode)")
    render.add_argument("--seed", type=int, default=0, help="reset seed (default 0)")
    render.add_argument("--fps", type=_positive_int, default=10, help="frames per second (default 10)")
    render.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    render.add_argument("--device", default="cpu", help="torch device (default cpu)")

    train = commands.add_parser("train", help="train agents on a Markov game")
    algorithms = train.add_subparsers(dest="algorithm", required=True)
    maddpg = algorithms.add_parser(
        "maddpg", help="MADDPG (Lowe et al. 2017), or independent DDPG with --independent",
        description="Trains MADDPG on a scenario or a PettingZoo environment (pettingzoo:MODULE), "
                    "then evaluates the trained agents over 100 episodes and draws one as a GIF. The run "
                    "folder's checkpoint.pt is written every 1,000,000 transitions and every 5 minutes "
                    "(--param checkpoint_every=N, checkpoint_minutes=M), and on Ctrl-C or SIGTERM.",
    )
    maddpg.add_argument("--scenario", required=True,
                        help="scenario name (see `gamelab scenarios`) or pettingzoo:MODULE, "
                             "e.g. pettingzoo:mpe2.simple_spread_v3")
    _run_options(maddpg, "maddpg", "MADDPGConfig", "transitions to collect, summed over copies (default 1,500,000)",
                 64, "--param batch_size=512", "--set num_agents=5")
    maddpg.add_argument("--independent", action="store_true",
                        help="independent DDPG: critics see only their own agent (centralized_critic=false)")

    mappo = algorithms.add_parser(
        "mappo", help="MAPPO (Yu et al. 2022), or IPPO with --ippo; MLP or GNN (InforMARL) models",
        description="Trains MAPPO on a scenario with parameter sharing, then evaluates the trained agents over "
                    "100 episodes and draws one as a GIF. --model gnn reads graph observations (navigation) and "
                    "runs with any number of agents; --filter online-cbf learns each agent's CBF gain on top of "
                    "goal seeking. checkpoint.pt is written every 5 minutes, at the end and on Ctrl-C or SIGTERM.",
    )
    mappo.add_argument("--scenario", required=True, help="scenario name (see `gamelab scenarios`)")
    mappo.add_argument("--model", choices=["mlp", "gnn"], default=None, help="the actor-critic (default mlp)")
    mappo.add_argument("--filter", choices=["none", "online-cbf"], default=None,
                       help="online-cbf: the policy sets each agent's CBF gain (default none)")
    mappo.add_argument("--ippo", action="store_true", help="IPPO: the critic sees only its own agent")
    _run_options(mappo, "mappo", "MAPPOConfig", "copy-steps to collect, summed over copies (default 2,000,000)",
                 128, "--param epochs=5", "--set preset=informarl")

    evaluate = commands.add_parser(
        "evaluate", help="replay a trained policy and report its mean return",
        description="Plays a checkpoint (or a scripted or random policy) and reports its mean return; on "
                    "navigation also InforMARL's T, collisions per agent and S%% and GCBF+'s safe, finish and "
                    "success rates. A gnn checkpoint runs with any --set num_agents=M.")
    evaluate.add_argument("checkpoint", nargs="?", default=None,
                          help="checkpoint.pt or policy.pt written by `gamelab train`")
    evaluate.add_argument("--policy", choices=["scripted", "random"], default=None,
                          help="play the scenario's scripted policy or uniform random actions instead of a checkpoint")
    evaluate.add_argument("--scenario", default=None,
                          help="the scenario (or pettingzoo:MODULE) it was trained on (default: the one the "
                               "checkpoint records)")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="scenario settings (repeatable), over the ones the checkpoint records")
    evaluate.add_argument("--filter", choices=["none", "cbf", "online-cbf"], default=None,
                          help="cbf: pass the policy's commands (or discrete moves) through the CBF safety filter "
                               "at a fixed gain; "
                               "online-cbf: the gains of a checkpoint trained with it (default: what the checkpoint "
                               "records)")
    evaluate.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                          help="a setting of the cbf filter: alpha (default 1), margin (0.05), neighbours (8), "
                               "barrier (braking, hocbf or lookahead), detour (90), share (0.5), "
                               "pairs (shared, yield, parked, obstacles or parked_only)")
    evaluate.add_argument("--sample", action="store_true",
                          help="a MAPPO checkpoint's actions drawn from its policy (seeded by --seed) instead of the "
                               "deterministic ones (the most likely move, or the mean)")
    evaluate.add_argument("--episodes", type=_positive_int, default=100, help="episodes to play (default 100)")
    evaluate.add_argument("--seed", type=int, default=1, help="seed of the evaluation episodes (default 1)")
    evaluate.add_argument("--device", default="cpu", help="torch device (default cpu)")
    evaluate.add_argument("--gif", default=None, help="also write one episode as this .gif")
    evaluate.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    tournament = commands.add_parser(
        "tournament", help="play every pair of players and rate them",
        description="Plays a round-robin tournament from a YAML config (see examples/*_tournament.yaml), "
                    "storing every match in SQLite as it finishes: running the same command again resumes.",
    )
    tournament.add_argument("config", help="the tournament's YAML file")
    tournament.add_argument("--db", default=None, help="SQLite file of the results (default runs/tournament-NAME.sqlite)")
    tournament.add_argument("--backend", choices=["local", "ray"], default="local",
                            help="play in this process (default) or as Ray tasks")
    tournament.add_argument("--ray-address", default=None,
                            help="join this Ray cluster (with --backend ray); default: start a local one")
    tournament.add_argument("--report", default=None,
                            help="write payoffs.png, ratings.png, results.json and index.html into this folder")
    tournament.add_argument("--allow-code", action="store_true",
                            help="let the config's callable players import and run the Python code they name "
                                 "(only for configs you trust; without it such a config is refused)")
    tournament.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    tournament.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    neupl = commands.add_parser(
        "neupl", help="train a population in one conditional network (NeuPL, Simplex-NeuPL)",
        description="NeuPL (Liu et al. 2022): one network conditioned on each policy's opponent mixture, a row of "
                    "the interaction graph Sigma, represents a population; every row trains at once and Sigma is "
                    "re-solved from the exact payoff table. 2-player zero-sum game trees and normal-form games, "
                    "policies playing both seats; on two-team Markov games (tag) the network is MADDPG's actors "
                    "and critics and the payoff table is measured from batched episodes.")
    neupl.add_argument("game", help="as for `gamelab solve`: kuhn_poker, leduc_poker, rock_paper_scissors, "
                                    "an .efg/.nfg path, ... (2-player zero-sum); or a two-team scenario (tag)")
    neupl.add_argument("--graph", default=None, help="meta-graph solver: psro-n (default), fictitious-play, "
                                                     "self-play or cycle")
    neupl.add_argument("--meta-solver", default=None,
                       help="psro-n's rows and the meta-Nash mixture: nash (default), prd, rm, uniform, alpharank")
    neupl.add_argument("--population", type=_positive_int, default=None, help="policies N (default 8)")
    neupl.add_argument("--simplex", type=_non_negative_float, default=None,
                       help="Simplex-NeuPL: weight of best responses to mixtures drawn from the simplex, in [0, 1) "
                            "(default 0: NeuPL)")
    neupl.add_argument("--predict-opponent", type=_non_negative_float, default=None, metavar="WEIGHT",
                       help="add a head that predicts which policy the opponent is, trained against the exact "
                            "posterior with this weight (default 0: no head)")
    neupl.add_argument("--steps", type=_positive_int, default=None,
                       help="between meta-graph updates: gradient steps on a tree (default 50), transitions on a "
                            "Markov game (default 50000)")
    neupl.add_argument("--learning-rate", type=_non_negative_float, default=None, help="Adam's (default 1e-3)")
    neupl.add_argument("--gradient", default=None,
                       help="counterfactual (default), exact (through the sequence form) or sampled (REINFORCE)")
    budget = neupl.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=_positive_int, default=None,
                        help="meta-graph updates in all (default 30)")
    budget.add_argument("--minutes", type=_non_negative_float, default=None,
                        help="train for this many more minutes instead")
    neupl.add_argument("--seed", type=int, default=None, help="the run's seed (default 0)")
    neupl.add_argument("--device", default=None, help="torch device (default cpu)")
    neupl.add_argument("--out", default=None, help="run folder: state.pt, graphs.json, result.json, plots, "
                                                  "TensorBoard events")
    neupl.add_argument("--resume", action="store_true", help="continue the run in --out with its settings")
    neupl.add_argument("--plot", default=None, help="write NashConv against iterations and seconds as a PNG")
    neupl.add_argument("--max-memory", default=None, metavar="SIZE",
                       help="memory gamelab may use, e.g. 8GB (default: 80%% of what is available)")
    markov = neupl.add_argument_group("Markov games")
    markov.add_argument("--num-envs", type=_positive_int, default=None, help="copies trained together (default 64)")
    markov.add_argument("--sims-per-entry", type=_positive_int, default=None,
                        help="episodes per pair of policies when U is measured (default 16)")
    markov.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario setting (repeatable)")
    markov.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a MADDPG setting of the learner, e.g. batch_size=512 (repeatable)")
    neupl.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    bench = commands.add_parser("bench", help="run a benchmark against its anchors (from a source checkout)")
    bench.add_argument("target", choices=["sim", "matrix", "cfr", "maddpg", "tournament", "nfg", "psro",
                                                 "psro_markov", "neupl", "neupl_markov", "navigation"],
                       help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the benchmark, e.g. --json")
    return parser


def command_bench(args: argparse.Namespace) -> int:
    import importlib
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isdir(os.path.join(root, "benchmarks")) and root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(f"benchmarks.{args.target}")
    except ImportError as error:
        raise GamelabError(
            f"the benchmarks ship with gamelab's source checkout, not with an installed package ({error})"
        ) from None
    result = module.main(list(args.options))
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "solve": ("solve", "command_solve"),
        "games": ("solve", "command_games"),
        "solvers": ("solve", "command_solvers"),
        "scenarios": ("solve", "command_scenarios"),
        "render": ("markov", "command_render"),
        "train": ("markov", "command_train"),
        "evaluate": ("markov", "command_evaluate"),
        "tournament": ("tournament", "command_tournament"),
        "psro": ("psro", "command_psro"),
        "neupl": ("neupl", "command_neupl"),
    }
    try:
        from games.memory import parse_size, set_limit

        limit = getattr(args, "max_memory", None)
        set_limit(None if limit is None else parse_size(limit))  # this command's limit, not a previous call's
        if args.command == "bench":
            return command_bench(args)
        import importlib

        module, function = handlers[args.command]
        return getattr(importlib.import_module(f"marl.commands.{module}"), function)(args)
    except GamelabError as error:
        print(f"gamelab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        import errno

        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"gamelab {args.command}: error: cannot write{where}: {error.strerror}; files written before are "
              "intact (gamelab writes through a temporary file and a rename)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
