"""`/policy status`: what every environment runs, in which mode, and how it is doing.

`service` answers (from the cache when it is current, else by listing); `cache` follows each
environment with list + watch and keeps per report only its contribution to the counts. The
`Snapshot` they produce is the port other features read (`bot.ports.snapshot`).
"""
