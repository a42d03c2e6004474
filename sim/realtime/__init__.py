"""The real-time twin: MuJoCo on the wall clock behind the real servo drivers, free-running
twin cameras and a free-running scripted teleop, each able to live in its own process.

* ``make_twin_robot(kind, port)``: the WidowX 250 / SO-100 driver over a byte-level bus whose
  servos are the twin's joints (``robot.twin_host`` is the ``RealtimeTwin``).
* ``TwinStateBlock``: the twin's state in shared memory; ``MirrorTwin`` replays it in another
  process (cameras, teleop).
* ``TwinCameraSource``: a twin camera behind the ``Camera`` interface, on its own clock.
* ``TwinExpertDriver``: the scripted expert planning from a mirror, on the wall clock.

See docs/twin.md ("The real-time twin").
"""

from sim.realtime.address import TwinAddress, is_twin_url, parse_twin_url
from sim.realtime.faults import FaultError, parse_fault
from sim.realtime.physics import RealtimeTwin
from sim.realtime.robot import make_twin_robot
from sim.realtime.state_block import TwinNameInUse, TwinNotRunning, TwinStateBlock

__all__ = ["TwinAddress", "is_twin_url", "parse_twin_url", "FaultError", "parse_fault", "RealtimeTwin",
           "make_twin_robot", "TwinNameInUse", "TwinNotRunning", "TwinStateBlock"]
