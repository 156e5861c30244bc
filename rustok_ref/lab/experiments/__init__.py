"""The measuring code behind the review notebooks: each module runs one experiment and
returns plain results, so a notebook only calls and plots, and the logic is unit-tested."""
