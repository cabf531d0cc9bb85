"""Training pico, the small SAM2 shipped with mixqsam2, on generated data (``mixqsam2 train-pico``)."""
