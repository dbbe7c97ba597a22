"""The commands of ``pbt-repro``, one module each: its help line (``HELP``), its parser and its ``main(argv)``, which
returns the exit code. The work itself is done by the modules they call (``repro.reproduce``, ``repro.study``, ...);
the flags several commands share are in ``repro.flags``; ``repro.cli`` dispatches to them."""
