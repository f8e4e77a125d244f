"""The search controller: Optuna proposes, the space decodes, the scorers score, the front is kept up to date."""
