"""The host side: the event-driven program the simulator prices, run and timed on this CPU,
and everything that compares the two.

==========================  ==============================================================
module                      holds
==========================  ==============================================================
``kernels``                 the program's compiled kernels (numba)
``program``                 ``MeasuredProgram``: a network's arrays in one arena at the
                            layout's offsets, and the driver that runs an inference
``measure``                 ``measure()``: warm-up and timed passes (``simsnn measure``)
``counters``                ``perf stat`` around the timed passes, where available
``timing``                  best-of timings pooled over rounds; arrays placed as the
                            program places them
``calibrate_layer``         the layer kernel's costs (accumulate, runs, events)
``calibrate_driver``        the driver's and small kernels' costs, multi-core figures
``calibrate_memory``        the kernel's stall on rows from DRAM and cache levels
``calibration``             ``calibrate_program``: all of the above as hardware fields
``detect``                  ``simsnn hw detect``: hwmodels' host detection plus the above
``validate``                ``simsnn validate``: measure and predict a validation set
``validation_report``       error statistics, ranking check, CSV, plot
==========================  ==============================================================

Imports run one way: kernels <- program <- measure; kernels <- timing <- calibrate_* <-
calibration <- detect; measure, calibration <- validate.
"""
