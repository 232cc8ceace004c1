"""The playground: the whole bot running against a local world, shown in a browser.

Its emulators of Slack and JIRA stand in for the real services on loopback; its control planes
(``control_plane``, ``pki``, ``seed``), Kyverno (``kyverno``), Prometheus (``prometheus``,
``alert_rule``) and Alertmanager (``alertmanager``), started as child processes (``child``),
are the real ones. The tests start all of them too.
"""
