"""Readers turn a network in any form (ArchSpec, Keras model, .tflite file) into the one layer IR.

The IR is `search_spaces.analysis.Layer`: op type, input/output shapes (batch dimension dropped),
kernel, stride, weight count, bias and batch-norm flags, fused activation and MACs. Ops beyond the
ArchSpec vocabulary keep TFLite's names in lower case (`concatenation`, `max_pool_2d`, `pad`, ...).
"""
