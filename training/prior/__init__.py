"""VLM-prior pretraining without hub weights (stand-in for internet pretraining).

`python -m training.prior --out DIR` writes a `from_pretrained` directory whose tiny VLM
knows every emoji of the catalogue by name and position; `training.prior.probe` measures
how much of that knowledge a model still holds.
"""
