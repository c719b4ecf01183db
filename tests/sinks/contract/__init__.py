"""The sink contract suite: what "durable" means for every sink (see :mod:`.registry`)."""
