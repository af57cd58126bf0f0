"""Stage 1, scan: what the model imports and declares, read from its files by AST and by text
(the user's code is never run): imports, pickles, declared requirement files, the model dir
and its config.pbtxt."""
