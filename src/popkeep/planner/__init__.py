"""The retention planner behind ``popkeep plan`` (docs/planner.md).

``model`` (the pure discrete-event simulation and its value types), ``schedule``
(time points and check schedules), ``scenario`` (TOML → Scenario), ``advice``
(recommended retention), ``report`` (per-device results, stories, ``--json``),
``render`` (text), ``history`` (``--from-state`` measurements), ``plot``
(matplotlib, imported lazily). Only ``scenario.read_scenario`` and
``plot.save_plot`` touch files; nothing here opens sockets or databases.
"""
