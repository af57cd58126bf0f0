"""How a staged environment is written: a reproducible gzip'd tar with every core (tar, gzip
members, the stamp), and the file system an archive would create, replayed to judge each path."""
