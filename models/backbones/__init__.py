"""Networks D_θ: the EDM2-style UNet, the FNO and their registry."""
