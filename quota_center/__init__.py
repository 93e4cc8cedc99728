"""The quota center: owns each budget's main bucket and hands slices of it to holders."""
