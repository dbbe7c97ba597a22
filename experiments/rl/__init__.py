"""Deep RL: A2C on Atari (``a2c.py``), the paper's section 4.1 at a scale one machine can run."""
