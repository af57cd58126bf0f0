"""Stage 2, resolve: import names -> distributions (declared > recipes), the Triton target
(release, Python, platform) from the recipe book, and the check for a forgotten ``--src``."""
