"""ML inference (:5004): the PyTorch model that recommends how far to open a window, and the
window automations' policy and switch devices.

``WindowModel`` (model.py) is a small MLP; ``Recommender`` (recommender.py) owns the loaded
weights and answers predictions; ``policy.decide`` turns a recommendation into what an
automation should do; ``Automations`` (automations.py) keeps each automation's mode and latest
decision and serves the devices whose source is an automation. See docs/automation.md.
"""
