"""Development tools: the synthetic world, the simulator and an embedded Redis.

For demos, tests and benchmarks. Production paths (`recsvc`, and `training` outside its CLI's
`--world` option) never import this package. May import `recsvc.contract`.
"""
