"""The chaos soak (`make soak`, `python -m soak`): scripted people run every flow against two
bot replicas on one PostgreSQL while a seeded fault schedule breaks Slack, JIRA, the API server,
the store and the replicas themselves; then an invariant checker reads Slack, JIRA, the cluster
and the store and says whether anything was lost, duplicated or left half-done."""
