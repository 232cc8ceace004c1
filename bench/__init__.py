"""`make bench`: the figures of SPEC 4.1 next to their peers', measured in one run."""
