"""An expert's weekly availability and blocked days (the inputs of slot validation)."""
