"""The scenario library as tests. Collected by conformance/plugin.py (ScenarioSuite): each
scenario file under --scenarios (default scenarios/) yields one item per tier it has."""
