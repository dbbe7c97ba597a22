"""The GAN experiment: DCGAN on CIFAR-10, PBT over the discriminator and generator learning rates."""
