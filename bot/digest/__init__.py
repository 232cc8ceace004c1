"""The daily digest: what changed in the environments since the previous digest.

The figures compared are sets of failing policies and failing namespaces per environment;
the previous digest's figures are kept in the store (`digest_figures`), so a restart between
two digests does not turn every failing policy into a "new" one. The sources are handed in
by the composition root (status's overview, the exception requests), so this module knows
no feature.
"""
