"""Mixed precision for SAM2: formats, fake quantization, WAIS scores, allocation, the precision plan."""
