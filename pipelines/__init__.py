"""DVC stage entry points: parse arguments and params, call the stage in ``rlvr.stages``. No logic here."""
