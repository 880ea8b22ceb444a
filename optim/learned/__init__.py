"""Learned allocation: a policy network that allocates a frame's features in one forward pass.

:mod:`optim.learned.objectives` holds the policy-gradient objectives (``policy_loss``) and the
credit assignment (``redistribute``) that train it.
"""
