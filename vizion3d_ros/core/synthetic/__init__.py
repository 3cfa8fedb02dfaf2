"""Ray-cast test scenes with exact per-pixel and per-point instance ids (tests, evaluation, benchmarks)."""
