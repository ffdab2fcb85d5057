"""The cost of one learned-optimizer update against optax.adam and its FLOP bound (`update`), of an inner step on the CNN families (`cnn_step`), and where it goes (`profile_step`, `backward`)."""
