"""darkroom: the reference upstream client of the Darkroom gateway."""
