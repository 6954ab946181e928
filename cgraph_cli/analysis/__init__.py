"""What is learnt from a finished pass: the chain-rule steps (explain), finite-difference checks, anomalies."""
