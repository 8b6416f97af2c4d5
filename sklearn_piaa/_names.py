"""Names of the meta-learning algorithms and of the comparison rows, with their labels.

Nothing here imports torch or scikit-learn: the command line builds its parser from these
names (``meta-train --algorithm``, ``table1 --algorithms``) without waiting seconds for
them. :mod:`sklearn_piaa.meta` and :mod:`sklearn_piaa.report` map the same names to their
classes; :mod:`sklearn_piaa.report` documents the tables it takes from here.
"""

__all__ = ["ALGORITHM_NAMES", "BACKBONE_NAMES", "BASELINE_LABELS", "TASK_VECTOR_METHODS",
           "TABLE1_METHODS", "METHOD_LABELS"]

# The keys of sklearn_piaa.meta.ALGORITHMS, in its order (it maps them to classes, which
# need torch; a test checks that the two agree).
ALGORITHM_NAMES = ("blg", "maml", "fomaml", "reptile", "merged", "average", "none")

# The keys of sklearn_piaa.nn.backbones.BACKBONES, in its order (a test checks it too).
BACKBONE_NAMES = ("efficientnet_lite0", "resnet18", "alexnet", "inception_v3", "tiny_cnn")

# The labels of sklearn_piaa.report.BASELINES, in its order.
BASELINE_LABELS = {
    "pam": "PAM (attributes + content)",
    "pam_attributes": "PAM (attributes)",
    "pam_content": "PAM (content)",
    "fpmf": "FPMF",
    "usar": "USAR (PPR & PAD)",
    "usar_ppr": "USAR (PPR)",
    "usar_pad": "USAR (PAD)",
    "pa_iaa": "PA_IAA",
    "ridge": "per-user ridge (own)",
    "consensus_ridge": "consensus + residual ridge",
}

# The three tables below are documented in sklearn_piaa.report, which exports them.
TASK_VECTOR_METHODS = {
    "tv_average": ("task vectors (generic base)", "average", 0),
    "tv_blg": ("task vectors (BLG base)", "blg", 0),
    "tv_blg_finetune": ("task vectors (BLG base) + fine-tune", "blg", 20),
}

TABLE1_METHODS = {
    "none": "none (ImageNet, fresh head)",
    "average": "BA-PIAA (average)",
    "maml": "MAML",
    "reptile": "Reptile",
    "merged": "merged (Fig. 5a)",
    "blg": "BLG-PIAA",
    **{name: BASELINE_LABELS[name]
       for name in ("pam_content", "fpmf", "usar", "ridge", "consensus_ridge")},
}

METHOD_LABELS = {**TABLE1_METHODS, "fomaml": "first-order MAML", **BASELINE_LABELS,
                 **{name: row[0] for name, row in TASK_VECTOR_METHODS.items()}}
