"""``popkeep serve``: the long-running collector (issue 17).

Owns: the service's plain data and protocols (:mod:`.model`), the polling loop and
its timing. Sits above ``app`` (it runs passes through :class:`popkeep.app.App`)
and below ``cli``; only ``app`` names concrete sinks, sources and stores.
"""
