"""Population Based Training (Jaderberg et al. 2017): a small library that trains a population of one task's members,
copying the better members' weights and hyperparameters as it goes. It imports nothing outside itself but the
standard library, numpy and scipy (Ray and scikit-learn only where a run asks for them), and the package itself
imports nothing: import the module you need, ``from pbt.experiment import run_experiment`` to start.

A run flows through it like this. ``experiment.run_experiment`` has ``rundir`` create (or reopen) the run directory,
whose store records the config and the first members. The controller then hands intervals to an executor; a worker
trains the member with the task (``interval.run_interval``) and sends back a result. For each result the controller
asks ``algorithm`` what follows (the ready rule, exploit and explore, a failure's replacement) and publishes the
member's new state, with the scores and events that explain it, in one store transaction. ``results`` reads a
finished (or still running) run back from its store; ``lineage`` and ``diagnostics`` rebuild what its events imply.

Algorithm 1's decisions, each a pure function:
- ``algorithm``: what a member does after an interval, when it is ready, and when it failed;
- ``exploit``: the exploit rules (truncation, t-test, tournament), which pick the member to copy;
- ``space``: search spaces, their priors, and the explore step.

The strategies beside it (``PBTConfig.strategy``):
- ``pb2``: PB2, whose Gaussian-process bandit picks the explore step's values;
- ``fire``: FIRE PBT, whose own ready decision is built from ``algorithm``'s steps.

Settings: ``config`` (``PBTConfig``, and strict loading of a task's config dataclass).

The store and the run directory:
- ``rows``: what the store holds, as Python values (members, snapshots, scores, intervals, events);
- ``store``: the store's SQLite layout, and ``StoreReader``, which anyone may read a run with;
- ``store_writer``: ``Store``, through which the run's owner alone writes;
- ``checkpoints``: checkpoint files, written atomically and checked by their SHA-256;
- ``lock``: the lock that makes one process the owner of a run directory;
- ``rundir``: creating, reopening, resuming and replacing a run directory;
- ``results``: the best member, its schedule and the member table, read from a store;
- ``lineage`` and ``diagnostics``: lineages, schedules and greediness, rebuilt from a run's events.

The contract with a task: ``task`` (the ``Task`` interface a member is trained through) and ``domain`` (``Domain``,
what a task module declares: how to make its task, its config and profiles, its metric); ``function_task`` runs a
training loop written as a generator function, Ray Tune's function API's shape, as a ``Task``.

Running a population: ``experiment`` (``run_experiment``, the entry point), ``controller`` (it schedules, and
applies ``algorithm``'s decisions), ``interval`` (one member's interval, as a worker runs it), ``executor`` (intervals
in this process or in worker processes), ``ray_executor`` (intervals on a Ray cluster) and ``stopping`` (a stop score
or a time limit that ends a run before its budget).

Errors: ``errors`` words a library error in its caller's terms (a command-line flag or a Python argument).
"""
