"""Speed of vograd's own machinery: throughput, memory, padding, sharding, replayed runs (`run` is the driver).

    vograd bench speed [--quick] [--out DIR]        # = python -m vograd.benchmarks.speed.run
"""
