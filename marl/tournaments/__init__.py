"""Tournaments: many players over one game, payoff tables, ratings, resumable results.

- ``config``: the YAML file, validated field by field;
- ``players``: a configured player made ready for one kind of game;
- ``arenas``: where matches are played, one arena per kind of game;
- ``rows``: the blocks of matches and the stored rows, shared by the arenas and the store;
- ``store``: the SQLite database that makes a tournament resumable;
- ``run``: the run itself, its tables and ratings (``run_tournament``);
- ``report``: the report folder (heatmap, rating bars, HTML).
"""
