"""The playground: the whole bot running against a local world, shown in a browser.

Its emulators of Slack and JIRA stand in for the real services on loopback; the tests use
them too.
"""
