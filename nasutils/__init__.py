"""nasutils: the logic behind the reproducible companion to an RL-based analog NAS report.

Modules, one concept each: ``data`` (the measured dataset), ``space`` (architecture
search spaces), ``vqvae`` and ``tuning`` (the latent space and its hyperparameter
search), ``surrogate`` (XGBoost accuracy predictor), ``env`` and ``agents`` (the
latent-edit environment and PPO), ``search`` (search methods under a budget),
``analog`` and ``images`` (PyTorch networks, image data and aihwkit evaluation),
``claims`` (the report's claims and the ledger), ``profiles`` (named parameter
sets), ``notebook`` (helpers the book's notebooks call), ``plots``, ``summary``,
``latent_study`` and ``rl_study`` (chapter-level studies) and ``cli``.
"""

__version__ = "0.1.0"
