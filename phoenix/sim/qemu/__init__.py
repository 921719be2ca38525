"""A real QEMU guest behind the simulator: the guest image, the launcher, the agent and QMP clients.

Used only when ``phoenix sim serve --guest-image`` (or ``PHOENIX_SIM_GUEST_IMAGE``) names an
image; without it the simulator's modelled guest answers (fast, every test).
"""
