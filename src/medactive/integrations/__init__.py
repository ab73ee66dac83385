"""medactive inside other tools: a MONAI Label active-learning strategy
(:mod:`medactive.integrations.monailabel`, the ``[monailabel]`` extra).

Label Studio's ML backend lives with the labelling projects it serves
(:mod:`medactive.annotate.labelstudio`).
"""
