# Convenience wrappers around tasks.py (which needs only python3).
.PHONY: demo test bench
demo:
	python3 tasks.py demo
test:
	python3 tasks.py test
bench:
	python3 tasks.py bench
