"""Command-line entry points: ``mixqsam2 <verb>`` and ``run_stream`` (thin: parse, call the
library, print/write results)."""
