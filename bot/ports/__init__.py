"""What one feature asks of another, named.

The features (status, alerts, exceptions, backup, promotion, doctor) do not import each other
(`.importlinter` checks it). When one needs something another has, the consumer's need is a
Protocol here, with the plain data that crosses; the composition root hands over the feature
that fulfils it. Nothing here does work or imports a feature.
"""
