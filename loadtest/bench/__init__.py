"""``python -m loadtest.bench``: throughput and latency of the agent's and the center's spending paths
against the ceilings of the transport, measured in one run on loopback.

What it starts (``loadtest.bench.servers``, on devstack): a throwaway Redis and PostgreSQL, the center
(``quota-center serve``), one region agent (``region-agent serve``) and two echo servers
(``loadtest.bench.echo``): *echo* answers Deduct and DeductBatch at once, *echo+EVALSHA* runs
one trivial Lua script per deduction first (a DeductBatch's in one pipeline). Each is its own
process with one asyncio loop and a ``grpc.aio`` server, as the center and the agent are, so the
ratios compare like with like.

What it measures, each for a warm-up and then ``--seconds``:

* saturation: a closed loop with ``--clients`` × ``--concurrency`` calls in flight (DeductBatch:
  ``--batch-concurrency``), per path:
  calls/s, deductions/s, p50 and p99 latency (at saturation that latency is mostly queueing);
* a fixed moderate rate: an open loop at ``--open-fraction`` of the echo throughput (unary
  paths: of echo Deduct; batch paths: of echo DeductBatch), latency from the scheduled start;
* center calls (forwards plus slice requests, from the agent's ``/metrics``) per thousand
  deductions served through the agent, over the measurement windows of the agent's paths;
* a drain: a small budget spent to the end through the agent and the center at once, with the
  holders' balances read from Admin ``Audit`` every 100 ms.

Ratios are throughput / ceiling, both taken in this run, so they mean something on a shared or
slow machine where absolute numbers do not. The targets are checked against them.

Outputs: the tables on stdout, progress on stderr, the report as JSON (``--json``) and a PNG
chart (``--png``): matplotlib, from the ``loadtest`` extra, draws it (bars of each path's
throughput against its ceiling, and the remaining budget per holder during the drain).

Modules: ``cli`` (options, main), ``config``, ``servers`` (what is started), ``client`` (the load
generator), ``paths`` (what is measured against what), ``measure`` (one window), ``drain``,
``agent_metrics``, ``runner`` (the order of it all, the report), ``report`` (the tables),
``chart`` (the PNG) and ``echo`` (the ceilings' servers).
"""
