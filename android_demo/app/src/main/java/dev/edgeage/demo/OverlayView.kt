package dev.edgeage.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import java.util.Locale
import kotlin.math.max

/** Boxes and labels over the camera preview: age, gender with its confidence, and the inference time. */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var frame: FrameResult? = null
    private var mirrored = false
    private val boxPaint = Paint().apply {
        style = Paint.Style.STROKE
        strokeWidth = 6f
        color = Color.GREEN
    }
    private val textPaint = Paint().apply {
        color = Color.WHITE
        textSize = 44f
        isAntiAlias = true
        setShadowLayer(4f, 0f, 0f, Color.BLACK)
    }

    /** Show a frame's faces; `mirrored` for the front camera, whose preview is shown mirrored. */
    fun show(result: FrameResult, mirrored: Boolean) {
        frame = result
        this.mirrored = mirrored
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val result = frame ?: return
        // PreviewView's default FILL_CENTER: scale the frame to cover the view, centred.
        val scale = max(width.toFloat() / result.width, height.toFloat() / result.height)
        val dx = (width - result.width * scale) / 2f
        val dy = (height - result.height * scale) / 2f
        for (face in result.faces) {
            var left = face.box.left * scale + dx
            var right = face.box.right * scale + dx
            if (mirrored) {
                val flippedLeft = width - right
                right = width - left
                left = flippedLeft
            }
            val box = RectF(left, face.box.top * scale + dy, right, face.box.bottom * scale + dy)
            canvas.drawRect(box, boxPaint)
            val answer = face.answer
            val label = if (answer == null) {
                context.getString(R.string.no_eyes)
            } else {
                String.format(
                    Locale.ROOT, "%.0f y  %s %.0f%%  %.1f ms",
                    answer.age, if (answer.isFemale) "F" else "M", 100f * answer.confidence(), face.inferenceMs,
                )
            }
            canvas.drawText(label, box.left, box.top - 12f, textPaint)
        }
    }
}
