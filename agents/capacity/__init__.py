"""Capacity: how many teams a policy needs, on a city's own calls.

- :mod:`~heart.agents.capacity.timing`: how long a call keeps a team busy.
- :mod:`~heart.agents.capacity.shifts`: weekly windows on the simulation's clock.
- :mod:`~heart.agents.capacity.simulate`: one pool of teams taking its calls, with the
  dispatch stage's queue rule (:mod:`heart.agents.dispatch.queue_rule`).
- :mod:`~heart.agents.capacity.staffing`: the smallest team count that reaches a target.

Pure: no broker, no clock, no I/O; the same calls, policy and seed give the same figures.
"""
