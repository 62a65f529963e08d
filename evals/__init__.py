"""Evaluation and training data for the built-in policies.

``evals.datasets`` turns the public labelled datasets in ``../shared/data`` into `policy.cases.Case`
files (``python -m evals.build``); ``evals.train`` fits the classifier heads on their train split.
Nothing in this package ships in the wheel or runs at gateway run time.
"""
