"""Tests of the token billing service (a package, so its modules never clash with
other test directories collected in the same pytest run)."""
