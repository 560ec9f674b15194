USE probe
