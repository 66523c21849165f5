"""Benchmarks of pooldaemon: ``bench.run`` is the load benchmark (``make bench``),
``bench.soak`` the soak test (``make soak``); ``bench_route.py`` and ``bench_usage.py``
are micro-benchmarks (``make bench-core``)."""
