# Conveniences over ./dev, the front door (it works where make is not installed).
.PHONY: run test setup lint bench
run:
	./dev run
test:
	./dev test
setup:
	./dev setup
lint:
	./dev lint
bench:
	./dev bench
