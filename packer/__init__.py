"""tritonpack: ship a Triton Python-backend model as easily and safely as a TorchScript model.pt."""

__version__ = "0.1.0"
