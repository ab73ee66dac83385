"""medactive's defaults: the strategies used when the user names none.

Each was chosen by evidence, not by the papers' names, and none has a parameter fitted to one
dataset (the rationale is in the linked sections). This module imports nothing, so the CLI's help
can name the defaults without loading torch.
"""

# Cold start (zero labels): TypiClust (Hacohen et al. 2022), one most-typical image per K-means
# cluster of the pool, K = budget. Best label-free start in the cold-start study (above random
# in 16 of 16 setting x budget cells, docs/coldstart.md "Which default, and why"); it needs only
# features, no dataset map, so it serves every encoder (MoCo, ImageNet, your own embeddings).
DEFAULT_COLDSTART = "typiclust"

# Acquisition (once there are labels): Cluster-Margin while labels are scarce, Margin from
# DEFAULT_SWITCH_PER_CLASS labels per class on (docs/results.md "Acquisition defaults").
DEFAULT_ACQUISITION = "cluster-margin-then-margin"

# Labels per class at which the default acquisition switches from Cluster-Margin to Margin:
# from 25 per class on, Margin was ahead of Cluster-Margin on BloodMNIST and never measurably
# behind on its long-tailed variant, while below ~20 per class Margin alone collapsed on a
# long-tailed draw (docs/results.md "The switch point"). Counted per class, so it scales with C.
DEFAULT_SWITCH_PER_CLASS = 25

# Encoder of a new labelling project (`project init --encoder`): MoCo v2 pre-trained on the
# pool, the only one there was before the registry (models/encoders.py). The evidence study of
# issue 19 (docs/coldstart.md) decides whether a pretrained encoder replaces it.
DEFAULT_ENCODER = "moco"
