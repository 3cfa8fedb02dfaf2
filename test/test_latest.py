import threading

from vizion3d_ros.ros.latest import LatestSlot


def test_newest_item_wins_and_replacements_are_counted():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0) == 4
    assert slot.replaced == 4
    assert slot.take(timeout=0.01) is None


def test_consumer_wakes_on_put_and_on_close():
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    t.start()
    slot.put('frame')
    t.join(timeout=10)
    assert got == ['frame']
    t2 = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    t2.start()
    slot.close()
    t2.join(timeout=10)
    assert not t2.is_alive() and got[-1] is None and slot.closed
